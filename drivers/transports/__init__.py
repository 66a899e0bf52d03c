"""Byte streams chosen by URL: tcp://, tcp-listen://, serial://."""
