"""The canvas API: what a canvas author imports.

>>> from runtime import Canvas, Response, stdlib
"""

from runtime import stdlib
from runtime.canvas import Canvas, Handler, UserFunction
from runtime.http import Request, Response

__all__ = ["Canvas", "Handler", "Request", "Response", "UserFunction", "stdlib"]
