"""The Kafka command-line tools suite (cli_suite.py): checks, normalisation, known differences."""
