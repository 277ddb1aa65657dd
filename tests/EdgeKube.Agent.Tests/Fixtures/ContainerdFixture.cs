using EdgeKube.Testing;

namespace EdgeKube.Agent.Tests.Fixtures;

/// <summary>The tests' own containerd (<see cref="ContainerdHost"/>), shared by every integration test through the "containerd" collection.</summary>
public sealed class ContainerdFixture : ContainerdHost, IAsyncLifetime;

[CollectionDefinition("containerd")]
public sealed class ContainerdCollection : ICollectionFixture<ContainerdFixture>;
