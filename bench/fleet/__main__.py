from bench.fleet.run import main

main()
