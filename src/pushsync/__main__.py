from pushsync.cli.main import main

main()
