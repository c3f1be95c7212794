from bench.claim.run import main

main()
