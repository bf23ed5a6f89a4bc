"""Research drivers: the rounds and studies behind RESULTS.md, built on the training pipeline
(training/). Each is a `python -m training.studies.NAME` script whose results are committed;
none is a test and none is imported by the pipeline or the service."""
