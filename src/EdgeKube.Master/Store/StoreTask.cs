namespace EdgeKube.Master.Store;

/// <summary>Runs synchronous store work (SQLite and in-memory reads never truly await) and reports its outcome as a task.</summary>
internal static class StoreTask
{
    public static Task<T> Run<T>(Func<T> operation, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        try
        {
            return Task.FromResult(operation());
        }
        catch (Exception e)
        {
            // Faulted rather than thrown, so callers see errors at await as with any async method.
            return Task.FromException<T>(e);
        }
    }
}
