"""What the console reads from the gateway's tables, always for one tenant (the admin
queries are the only ones across tenants). Pages never build SQL themselves."""
