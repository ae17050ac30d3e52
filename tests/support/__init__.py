"""Test-only helpers: the slow reference verifier and capture corruption tools.

``tests`` is a namespace package (no ``tests/__init__.py``); pytest's
``pythonpath = ["."]`` puts the repository root on ``sys.path``, so tests import
these modules as ``from tests.support.reference import verify_reference``.
"""
