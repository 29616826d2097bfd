"""cssadmin: generate a key in an HSM, wrap it there for a cloud's bring-your-own-key import."""

__version__ = "0.1.0"
