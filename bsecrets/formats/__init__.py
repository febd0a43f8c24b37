"""Export and import formats: dotenv, JSON, YAML, shell, github-env. Imported by services
and cli."""
