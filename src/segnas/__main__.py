from segnas.cli import main

main()
