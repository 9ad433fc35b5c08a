"""Automation triggers fired into the host's workflow engine, each exactly once."""
