from bench.write_budget.run import main

main()
