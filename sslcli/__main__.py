from sslcli.cli.app import main

main()
