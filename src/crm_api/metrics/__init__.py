"""Sales metrics: the KPIs a sales team runs on, computed in SQL, the same on both databases."""
