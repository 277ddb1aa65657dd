using System.Security.Cryptography.X509Certificates;
using MQTTnet;

namespace EdgeKube.Protocol;

/// <summary>How agents and the master reach a broker given as <c>mqtt://host:port</c> or <c>mqtts://host:port</c>.</summary>
public static class BrokerEndpoint
{
    /// <summary>
    /// The broker's address (port 1883, or 8883 for mqtts, when the URL has none) and, for mqtts, TLS that trusts
    /// exactly the CA in <paramref name="caPem"/>, or the system store when it is null.
    /// </summary>
    public static MqttClientOptionsBuilder WithBroker(this MqttClientOptionsBuilder builder, Uri url, string? caPem)
    {
        var tls = url.Scheme == "mqtts";
        builder = builder.WithTcpServer(url.Host, url.Port > 0 ? url.Port : tls ? 8883 : 1883);
        if (!tls)
        {
            return builder;
        }

        return builder.WithTlsOptions(o =>
        {
            o.UseTls();
            if (caPem is { Length: > 0 })
            {
                o.WithTrustChain([X509Certificate2.CreateFromPem(caPem)]);
            }
        });
    }
}
