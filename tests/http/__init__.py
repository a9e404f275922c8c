"""Tests of the HTTP status server over real sockets."""
