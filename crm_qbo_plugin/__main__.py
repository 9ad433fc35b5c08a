from crm_qbo_plugin.cli import main

main()
