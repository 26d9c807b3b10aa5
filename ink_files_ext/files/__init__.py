"""The file manager: roots and path checks, listings, operations, uploads, previews, shares."""
