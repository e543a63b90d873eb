"""
Connector plugins: each module holds one L{enttok.connectors.interface.ConnectorPlugin}.

Found with C{twisted.plugin.getPlugins(IConnectorPlugin, enttok.plugins)} (see
L{enttok.connectors.loader}); keep these modules import-light.
"""
