"""One module per `visualcnn` subcommand: add_arguments(parser) and run(args) -> exit code."""
