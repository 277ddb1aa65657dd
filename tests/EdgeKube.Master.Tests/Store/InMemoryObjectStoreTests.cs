using EdgeKube.Master.Store;

namespace EdgeKube.Master.Tests.Store;

public sealed class InMemoryObjectStoreTests : ObjectStoreContractTests
{
    private protected override Task<IObjectStore> OpenStoreAsync(StoreLimits limits) =>
        Task.FromResult<IObjectStore>(new InMemoryObjectStore(limits));

    private protected override int WatcherCount(IObjectStore store) => ((InMemoryObjectStore)store).WatcherCount;
}
