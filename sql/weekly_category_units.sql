-- Units per category and ISO week over the whole sales history: the
-- aggregation `restock bench lake` times against DuckDB.
SELECT
    category,
    date_trunc('week', CAST(date AS TIMESTAMP)) AS week,
    SUM(units) AS units,
    SUM(units * price) AS revenue
FROM sales
GROUP BY category, date_trunc('week', CAST(date AS TIMESTAMP))
ORDER BY category, week
