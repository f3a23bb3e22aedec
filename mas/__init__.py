"""Agents: runtime-agnostic brains and their SPADE and Mesa shells."""
