"""The stage notebooks, installed as package data of ``nanotools.notebooks``.

This file makes the folder a regular package, so that an editable install
and a wheel both find the notebooks with ``importlib.resources``.
"""
