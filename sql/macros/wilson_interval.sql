-- Rule (Wilson score interval): for x events among n, with z the normal quantile of the
-- confidence level, centre (p + z^2/2n) / (1 + z^2/n) and half-width
-- z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2), p = x/n. NULL when n = 0.
-- (Wilson 1927; Newcombe 1998, Stat Med 17:857, method 3.)
CREATE OR REPLACE MACRO cohorts.wilson_low(x, n, z) AS
    CASE WHEN n > 0 THEN greatest(0.0, least(1.0,
        ((x / n + z * z / (2 * n))
         - z * sqrt((x / n) * (1 - x / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)))
    END;
CREATE OR REPLACE MACRO cohorts.wilson_high(x, n, z) AS
    CASE WHEN n > 0 THEN greatest(0.0, least(1.0,
        ((x / n + z * z / (2 * n))
         + z * sqrt((x / n) * (1 - x / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)))
    END;
