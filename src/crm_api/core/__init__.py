"""What every slice shares: database, errors, auth, paging, audit."""
