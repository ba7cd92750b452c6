"""The `vlmq` command line: run the whole service, workers, migrations, tools."""
