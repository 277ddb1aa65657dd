using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace EdgeKube.Deploy.Tests;

/// <summary>
/// Builds the .debs and release tarballs once through build.cake's Package target (which runs
/// scripts/package-deb.sh) from what scripts/publish.sh published. With everything published (scripts/test.sh
/// publishes before the tests) the target runs alone (--exclusive); otherwise with its Publish dependency.
/// </summary>
public sealed class PackagesFixture : IAsyncLifetime
{
    public static readonly string[] Rids = ["linux-x64", "linux-arm64"];

    public string Version { get; } = Regex.Match(File.ReadAllText(Repo.PathOf("Directory.Build.props")), "<Version>([^<]+)</Version>").Groups[1].Value;

    public string Output { get; private set; } = "";

    public string Deb(string package, string arch) => Repo.PathOf("artifacts", "deb", $"{package}_{Version}_{arch}.deb");

    public string Tarball(string rid) => Repo.PathOf("artifacts", $"edgekube-{Version}-{rid}.tar.gz");

    public async Task InitializeAsync()
    {
        var published = Rids.All(r => File.Exists(Repo.PathOf("artifacts", "publish", r, "edgekube-agent"))
            && File.Exists(Repo.PathOf("artifacts", "publish", r, "master", "edgekube-master")));
        // Cake.Tool comes from the repository's tool manifest (.config/dotnet-tools.json), as the README says.
        await Repo.MustRunAsync("dotnet", "tool", "restore");
        string[] cake = ["cake", "--target=Package", "--rids=" + string.Join(',', Rids), .. published ? new[] { "--exclusive" } : []];
        var (code, output) = await Repo.RunAsync("dotnet", cake, timeout: TimeSpan.FromMinutes(published ? 30 : 70));
        Output = output;
        Assert.True(code == 0, "dotnet " + string.Join(' ', cake) + " failed:\n" + output);
        // Cake colours its console output; the words are what matter.
        var plain = Regex.Replace(output, @"\x1b\[[0-9;]*m", "");
        Assert.Contains("> bash scripts/package-deb.sh linux-x64 linux-arm64", plain);
        Assert.Matches(@"(?m)^\s*Package\s+\S+\s+Succeeded", plain);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition("packages")]
public sealed class PackagesCollection : ICollectionFixture<PackagesFixture>;

/// <summary>The Debian packages and release tarballs: their metadata, lintian, and a real install, upgrade and removal on this machine.</summary>
[Collection("packages")]
public sealed class PackageTests(PackagesFixture packages, ITestOutputHelper output)
{
    public static TheoryData<string, string> All => new()
    {
        { "edgekube-agent", "amd64" },
        { "edgekube-agent", "arm64" },
        { "edgekube-master", "amd64" },
        { "edgekube-master", "arm64" },
    };

    [Theory]
    [MemberData(nameof(All))]
    public async Task Dpkg_deb_info_shows_the_package_its_architecture_dependencies_and_conffiles(string package, string arch)
    {
        var info = await Repo.MustRunAsync("dpkg-deb", "--info", packages.Deb(package, arch));
        output.WriteLine(info);
        Assert.Matches($@"(?m)^ Package: {package}$", info);
        Assert.Matches($@"(?m)^ Version: {Regex.Escape(packages.Version)}$", info);
        Assert.Matches($@"(?m)^ Architecture: {arch}$", info);
        Assert.Matches(@"(?m)^ Depends: libc6 \(>= 2\.\d+\)", info);
        Assert.Matches(@"(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+postinst\s+#!/bin/sh$", info);
        Assert.Matches(@"(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+postrm\s+#!/bin/sh$", info);
        Assert.Matches(@"(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+prerm\s+#!/bin/sh$", info);
        Assert.Equal(package, (await Repo.MustRunAsync("dpkg-deb", "--field", packages.Deb(package, arch), "Package")).Trim());
        var contents = await Repo.MustRunAsync("dpkg-deb", "--contents", packages.Deb(package, arch));
        if (package == "edgekube-agent")
        {
            Assert.Matches(@"(?m)^-rwxr-xr-x root/root\s+\d+ \S+ \S+ \./usr/bin/edgekube-agent$", contents);
            Assert.Matches(@"(?m)^-rw------- root/root\s+\d+ \S+ \S+ \./etc/edgekube/agent\.yaml$", contents);
            Assert.Matches(@"(?m)^drwx------ root/root\s+0 \S+ \S+ \./var/lib/edgekube/$", contents);
            Assert.Matches(@"(?m) \./lib/systemd/system/edgekube-agent\.service$", contents);
            Assert.Matches(@"(?m) \./lib/systemd/system/containerd\.service\.d/10-edgekube\.conf$", contents);
            Assert.Matches(@"(?m) \./etc/edgekube/manifests/$", contents);
            Assert.Matches(@"(?m)^ Depends: .*containerd \(>= 1\.6\).*containernetworking-plugins", info);
        }
        else
        {
            Assert.Matches(@"(?m) \./usr/bin/edgekube-master -> \.\./lib/edgekube-master/edgekube-master$", contents);
            Assert.Matches(@"(?m)^-rwxr-xr-x root/root\s+\d+ \S+ \S+ \./usr/lib/edgekube-master/edgekube-master$", contents);
            Assert.Matches(@"(?m) \./etc/default/edgekube-master$", contents);
            Assert.Matches(@"(?m) \./lib/systemd/system/edgekube-master\.service$", contents);
        }

        // Every file under /etc is a conffile, so dpkg never overwrites one the admin changed.
        using var control = new TempDir();
        await Repo.MustRunAsync("dpkg-deb", "--control", packages.Deb(package, arch), control.Path);
        var expected = package == "edgekube-agent" ? "/etc/edgekube/agent.yaml\n" : "/etc/default/edgekube-master\n";
        Assert.Equal(expected, File.ReadAllText(control["conffiles"]));
    }

    [Fact]
    public async Task Lintian_reports_no_errors_on_any_package()
    {
        var debs = All.Select(row => packages.Deb((string)row[0], (string)row[1])).ToArray();
        var (code, report) = await Repo.RunAsync("lintian", ["--no-tag-display-limit", .. debs], timeout: TimeSpan.FromMinutes(10));
        output.WriteLine(report);
        var errors = report.Split('\n').Where(l => l.StartsWith("E: ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, "lintian errors:\n" + string.Join('\n', errors) + "\n\nfull report:\n" + report);
        // lintian exits 1 on errors only (warnings do not fail it).
        Assert.True(code == 0, $"lintian exited {code}:\n{report}");
    }

    [Fact]
    public async Task Packaged_units_verify_with_the_real_binaries_in_place()
    {
        using var root = new TempDir();
        await Repo.MustRunAsync("dpkg-deb", "-x", packages.Deb("edgekube-agent", "amd64"), root.Path);
        await Repo.MustRunAsync("dpkg-deb", "-x", packages.Deb("edgekube-master", "amd64"), root.Path);
        SystemdUnitTests.BuildRoot(root.Path, root["lib/systemd/system"], root["lib/systemd/system/containerd.service.d"]);
        var (code, report) = await SystemdUnitTests.VerifyAsync(root.Path, "edgekube-agent.service", "edgekube-master.service", "containerd.service");
        SystemdUnitTests.AssertClean(code, report);
    }

    [Fact]
    public async Task Release_tarball_holds_both_binaries_the_units_and_firmware_config()
    {
        foreach (var rid in PackagesFixture.Rids)
        {
            var listing = await Repo.MustRunAsync("tar", "-tzvf", packages.Tarball(rid));
            var top = $"edgekube-{packages.Version}-{rid}/";
            Assert.Matches($@"(?m)^-rwxr-xr-x 0/0\s+\d+ \S+ \S+ {Regex.Escape(top)}bin/edgekube-agent$", listing);
            Assert.Matches($@"(?m) {Regex.Escape(top)}bin/edgekube-master -> \.\./lib/edgekube-master/edgekube-master$", listing);
            foreach (var file in new[]
            {
                "lib/edgekube-master/edgekube-master", "systemd/edgekube-agent.service", "systemd/edgekube-master.service",
                "systemd/containerd.service.d/10-edgekube.conf", "firmware-config/boot/config.txt.append", "firmware-config/boot/cmdline.txt.append",
                "firmware-config/containerd/config.toml", "firmware-config/firstboot/firstboot.sh", "firmware-config/firstboot/user-data",
            })
            {
                Assert.Contains(top + file + "\n", listing.Replace(" -> ../lib/edgekube-master/edgekube-master", "", StringComparison.Ordinal) + "\n");
            }
        }
    }

    [Fact]
    public async Task Agent_package_installs_keeps_a_changed_config_on_reinstall_and_removes_and_purges()
    {
        using var policy = PolicyRcD.Install();
        var deb = packages.Deb("edgekube-agent", "amd64");
        try
        {
            output.WriteLine(await Dpkg.RunAsync("-i", deb));
            Assert.Equal("install ok installed", await Dpkg.StatusAsync("edgekube-agent"));
            Assert.Contains(packages.Version, await Repo.MustRunAsync("/usr/bin/edgekube-agent", "--version"));
            Assert.True(File.Exists("/lib/systemd/system/edgekube-agent.service"));
            Assert.True(Directory.Exists("/var/lib/edgekube"));
            Assert.True(Directory.Exists("/etc/edgekube/manifests"));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode("/etc/edgekube/agent.yaml"));
            // Enabled for the next boot (there is no systemd here to start it; policy-rc.d would refuse anyway).
            Assert.True(File.Exists("/etc/systemd/system/multi-user.target.wants/edgekube-agent.service"));

            // The admin puts the join config in place; a reinstall (or upgrade) must keep it.
            const string joined = "apiVersion: edgekube.io/v1\nkind: AgentConfig\nnodeName: board-7\n";
            File.WriteAllText("/etc/edgekube/agent.yaml", joined);
            output.WriteLine(await Dpkg.RunAsync("-i", deb));
            Assert.Equal(joined, File.ReadAllText("/etc/edgekube/agent.yaml"));

            output.WriteLine(await Dpkg.RunAsync("-r", "edgekube-agent"));
            Assert.False(File.Exists("/usr/bin/edgekube-agent"));
            Assert.False(File.Exists("/lib/systemd/system/edgekube-agent.service"));
            Assert.Equal(joined, File.ReadAllText("/etc/edgekube/agent.yaml"));
            Assert.Equal("deinstall ok config-files", await Dpkg.StatusAsync("edgekube-agent"));

            output.WriteLine(await Dpkg.RunAsync("-P", "edgekube-agent"));
            Assert.False(File.Exists("/etc/edgekube/agent.yaml"));
            Assert.False(Directory.Exists("/var/lib/edgekube"));
            Assert.False(File.Exists("/etc/systemd/system/multi-user.target.wants/edgekube-agent.service"));
            Assert.Equal("", await Dpkg.StatusAsync("edgekube-agent"));
        }
        finally
        {
            await Dpkg.TryPurgeAsync("edgekube-agent");
        }
    }

    [Fact]
    public async Task Master_package_installs_runs_and_removes_and_purges()
    {
        using var policy = PolicyRcD.Install();
        var deb = packages.Deb("edgekube-master", "amd64");
        try
        {
            output.WriteLine(await Dpkg.RunAsync("-i", deb));
            Assert.Equal("install ok installed", await Dpkg.StatusAsync("edgekube-master"));
            Assert.Contains(packages.Version, await Repo.MustRunAsync("/usr/bin/edgekube-master", "--version"));
            Assert.True(File.Exists("/etc/default/edgekube-master"));
            Assert.True(Directory.Exists("/var/lib/edgekube-master"));

            output.WriteLine(await Dpkg.RunAsync("-r", "edgekube-master"));
            Assert.False(File.Exists("/usr/bin/edgekube-master"));
            Assert.True(File.Exists("/etc/default/edgekube-master"));
            output.WriteLine(await Dpkg.RunAsync("-P", "edgekube-master"));
            Assert.False(File.Exists("/etc/default/edgekube-master"));
            Assert.False(Directory.Exists("/var/lib/edgekube-master"));
        }
        finally
        {
            await Dpkg.TryPurgeAsync("edgekube-master");
        }
    }
}

/// <summary>dpkg, waiting out another dpkg or apt that holds the lock (other jobs on a shared machine).</summary>
internal static class Dpkg
{
    public static async Task<string> RunAsync(params string[] args)
    {
        for (var attempt = 0; ; attempt++)
        {
            var (code, text) = await Repo.RunAsync("dpkg", ["--force-confold", .. args]);
            if (code == 0)
            {
                return text;
            }

            if (attempt < 60 && text.Contains("lock", StringComparison.OrdinalIgnoreCase))
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
                continue;
            }

            Assert.Fail($"dpkg {string.Join(' ', args)} exited {code}:\n{text}");
        }
    }

    public static async Task<string> StatusAsync(string package)
    {
        var (code, text) = await Repo.RunAsync("dpkg-query", ["-W", "-f=${Status}", package]);
        return code == 0 ? text.Trim() : "";
    }

    public static async Task TryPurgeAsync(string package)
    {
        if (await StatusAsync(package) != "")
        {
            await Repo.RunAsync("dpkg", ["-P", package]);
        }
    }
}

/// <summary>/usr/sbin/policy-rc.d answering 101 ("action not allowed"), as in image builds: no service is started.</summary>
internal sealed class PolicyRcD : IDisposable
{
    private const string Path = "/usr/sbin/policy-rc.d";
    private readonly bool _created;

    private PolicyRcD(bool created) => _created = created;

    public static PolicyRcD Install()
    {
        if (File.Exists(Path))
        {
            return new PolicyRcD(false);
        }

        File.WriteAllText(Path, "#!/bin/sh\nexit 101\n");
        File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return new PolicyRcD(true);
    }

    public void Dispose()
    {
        if (_created)
        {
            File.Delete(Path);
        }
    }
}
