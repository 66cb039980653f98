"""The product's own database (never Airflow's metadata DB)."""
