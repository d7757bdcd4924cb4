"""The call workflow's steps as Dagster ops: fetch, enrich, upsert, associate, write-back."""
