"""Prefect flows: they only wire the plain functions of the other stages."""
