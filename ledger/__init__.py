"""Information layer: Solidity sources, compiled artifacts, web3 clients and chain backends.

``ledger`` imports nothing else of vdg: it speaks plain numbers and addresses.
"""
