from pushsync.cli import main

main()
