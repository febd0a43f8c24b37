"""exec and render below the CLI: masking, the supervised child, templates. Imported by
services and cli."""
