"""SPADE 4 shells around the brains: the embedded XMPP server, agents, behaviours, processes."""
