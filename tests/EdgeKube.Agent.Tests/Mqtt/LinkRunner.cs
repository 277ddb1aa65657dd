using EdgeKube.Agent.Mqtt;

namespace EdgeKube.Agent.Tests.Mqtt;

/// <summary>The MQTT links a test runs: each link's <see cref="MqttLink.RunAsync"/> on one stop token, all stopped and disposed together.</summary>
internal sealed class LinkRunner : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(MqttLink Link, Task Run)> _links = [];

    public MqttLink Run(MqttLink link)
    {
        _links.Add((link, link.RunAsync(_stop.Token)));
        return link;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var (link, run) in _links)
        {
            try
            {
                await run;
            }
            catch (OperationCanceledException)
            {
            }

            await link.DisposeAsync();
        }

        _stop.Dispose();
    }
}
