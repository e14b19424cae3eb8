-- A separate database for Dagster's own storage, next to the recommender's data.
CREATE DATABASE dagster OWNER recommender;
