"""Fleet scoring on Apache Spark (the `spark` extra); outside `service/`, so that the service
image stays free of Spark."""
