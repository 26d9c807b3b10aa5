"""Hub side of INK's token scopes: define them and let every user put them on their tokens.

The scopes themselves (and what each allows) are defined next to the APIs that check them, in
:mod:`ink_files_ext.scopes`. What a user may *submit* is not a scope matter: the catalogue
builds the user's profile (:meth:`~ink_hub.catalogue.resolve.CatalogueResolver.profile_for`),
the portal receives it, and the one validator checks every job against it.
"""

from __future__ import annotations

from ink_files_ext.scopes import CUSTOM_SCOPES, user_role_scopes


def configure_scopes(c) -> None:
    """Define INK's custom scopes and grant them (on the user's own resources) to every user.

    A site that redefines the ``user`` role itself must keep these scopes in it."""
    c.JupyterHub.custom_scopes = {**CUSTOM_SCOPES, **dict(c.JupyterHub.custom_scopes or {})} \
        if "custom_scopes" in c.JupyterHub else dict(CUSTOM_SCOPES)
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    if not any(r.get("name") == "user" for r in roles):
        roles.append({"name": "user", "description": "Every user: their own resources and INK's scopes",
                      "scopes": user_role_scopes()})
    c.JupyterHub.load_roles = roles
