"""Static HTML reports of search, summarize and job runs (``r2cli report``)."""
