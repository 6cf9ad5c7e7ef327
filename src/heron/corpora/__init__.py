"""Built-in corpora that exist on every machine without downloads."""
