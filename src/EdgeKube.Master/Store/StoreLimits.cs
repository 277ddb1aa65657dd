namespace EdgeKube.Master.Store;

/// <summary>How much watch history a store keeps and how far one watcher may fall behind before it is expired.</summary>
internal sealed record StoreLimits
{
    /// <summary>Defaults for the master: the last 10,000 changes, 1,000 undelivered changes per watcher.</summary>
    public static StoreLimits Default { get; } = new();

    /// <summary>Changes kept in memory so watches can resume; older resourceVersions get Expired.</summary>
    public int HistoryCapacity { get; init; } = 10_000;

    /// <summary>Live changes a watcher may leave unread before it is closed with Expired.</summary>
    public int WatcherBufferCapacity { get; init; } = 1_000;

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(HistoryCapacity, 1, nameof(HistoryCapacity));
        ArgumentOutOfRangeException.ThrowIfLessThan(WatcherBufferCapacity, 1, nameof(WatcherBufferCapacity));
    }
}
