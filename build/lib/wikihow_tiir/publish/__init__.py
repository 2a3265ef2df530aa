"""Writing and publishing the dataset: Parquet shards, dataset card, validation, Hub push."""
