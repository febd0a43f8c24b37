from bsecrets.cli.app import main

main()
