"""The buyer's own MCP server: a tool registry behind one endpoint, for assistants such as Claude Desktop.

``server`` builds the server and its transports, ``tools`` is the registry, ``prompts`` the slash commands,
``status`` the setup/health/config reports, ``auth`` the gate in front of the endpoint. ``buyer.asgi`` routes
the MCP paths to it ahead of Django.
"""
