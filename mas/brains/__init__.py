"""Runtime-agnostic agent brains: observations in, actions out; no messaging, no wall clock."""
