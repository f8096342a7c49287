"""The original design's demo data, exactly as it published it: its demo logs in unchanged.

Its passwords and API key are public, so it is only ever loaded on request
(``dynaseal demo`` or ``--demo-data``), never by default.
"""

# The tenant (a business backend) registered on the gateway.
DEMO_TENANT_ID = "671249a93f1cf2f8bf9b2b82"
DEMO_TENANT_USERNAME = "user1"
DEMO_TENANT_EMAIL = "user1@example.com"
DEMO_TENANT_PASSWORD = "user1"
DEMO_TENANT_PASSWORD_HASH = "$2b$12$QFk6uHDBM5s69uSXrchivOC5SbpTUGV4tjmWz0nRvPSiMt.WAZVhC"
DEMO_TENANT_API_KEY = "4d72c063-881f-45fa-85ab-3375c84f5dd7"
DEMO_CALLBACK_URL = "http://127.0.0.1:9000/v1/callback/usage"
# Not in the original (its callbacks were unsigned): the demo tenant's webhook secret,
# public like the rest, so the demo backend can verify the demo gateway's callbacks.
DEMO_WEBHOOK_SECRET = "whsec_ZHluYXNlYWwtcHVibGljLWRlbW8td2ViaG9vay1rZXk="

# The end user of the business backend (the device logs in as this user).
DEMO_USER_ID = "671247fadb2faa4fec2c6f39"
DEMO_USER_USERNAME = "client1"
DEMO_USER_EMAIL = "client1@example.com"
DEMO_USER_PASSWORD = "client1"
DEMO_USER_PASSWORD_HASH = "$2b$12$fWy.Yjs9x5zSRirRibjliO4GX66GSO/.GuG7he9lIatuiNDoPPb9a"
