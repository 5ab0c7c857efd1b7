"""Training, evaluation over clips x crops, prediction, checkpoints and distributed runs."""
