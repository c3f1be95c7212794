from bench.worker.run import main

main()
