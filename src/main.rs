use std::time::Duration;

use clap::{Parser, Subcommand};
use realtime_server::auth::{now_secs, Audience, Auth, Claims};
use realtime_server::cli::{self, AdminClient, Call};
use realtime_server::config::{LogFormat, Settings};
use realtime_server::http::client_addr::TrustedProxies;
use realtime_server::store::{self, DatabaseUrl};

/// A real-time messaging server: WebSocket rooms, presence, typing and
/// notifications, with an admin HTTP API.
#[derive(Parser)]
#[command(name = "realtime-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and check the settings (files, environment, keys) and exit: 0
    /// when the server would start with them, 2 otherwise.
    CheckConfig,
    /// Print the settings in force as TOML, each with where it came from;
    /// secrets masked.
    PrintConfig,
    /// Print a JWT signed with the configured key (HS256 secret).
    Token {
        /// The user id (`sub`).
        user_id: String,
        /// Allowed room patterns, comma separated (`*` as a trailing wildcard).
        #[arg(long, value_delimiter = ',')]
        rooms: Vec<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// Give the token `role: admin`.
        #[arg(long)]
        admin: bool,
        /// Display name (`name`).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the rooms of a running server (every node).
    Rooms(Remote),
    /// Create a managed room on a running server.
    CreateRoom {
        /// The room's name.
        name: String,
        /// channel, group, dm or broadcast.
        #[arg(long = "type")]
        kind: Option<String>,
        /// public or private.
        #[arg(long)]
        visibility: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the open connections of a running server (every node).
    Connections {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The latest audit events, newest first.
    Events {
        /// How many (1 to 1000).
        #[arg(short = 'n', default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Connections, users, rooms and message counts, per node.
    Stats(Remote),
    /// Health and readiness; exits 1 when the server is not ready.
    Status(Remote),
}

/// How the operator commands reach a running server.
#[derive(clap::Args)]
struct Remote {
    /// The server's HTTP address (default: the configured host and port).
    #[arg(long)]
    server: Option<String>,
    /// Print the server's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("realtime-server: {e}");
            std::process::exit(2);
        }
    };
    init_logger(settings.log.format);
    for warning in &settings.warnings {
        log::warn!("{warning}");
    }
    realtime_server::memory::limit_arenas(settings.server.malloc_arenas);
    let result = match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => {
            // A missing or weak key stops the server before it touches the
            // database: no migration runs and no SQLite file is created.
            let auth = match Auth::from_settings(&settings.auth, settings.server.environment) {
                Ok(auth) => auth,
                Err(e) => {
                    eprintln!("realtime-server: {e}");
                    std::process::exit(1);
                }
            };
            if settings.database.run_migrations {
                if let Err(e) = migrate(&settings) {
                    eprintln!("realtime-server: {e:#}");
                    std::process::exit(1);
                }
            }
            actix_web::rt::System::new().block_on(realtime_server::server::run(settings, auth))
        }
        Cmd::Migrate => migrate(&settings),
        Cmd::CheckConfig => check_config(&settings),
        Cmd::PrintConfig => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            match realtime_server::config::effective::render(&vars) {
                Ok(text) => {
                    print!("{text}");
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Token {
            user_id,
            rooms,
            ttl,
            admin,
            name,
        } => token(&settings, user_id, rooms, ttl.into(), admin, name),
        Cmd::Rooms(remote) => operate(&settings, remote, Call::Rooms),
        Cmd::CreateRoom {
            name,
            kind,
            visibility,
            title,
            remote,
        } => operate(
            &settings,
            remote,
            Call::CreateRoom {
                name,
                kind,
                visibility,
                title,
            },
        ),
        Cmd::Connections { user, remote } => operate(&settings, remote, Call::Connections { user }),
        Cmd::Events { limit, remote } => operate(&settings, remote, Call::Events { limit }),
        Cmd::Stats(remote) => operate(&settings, remote, Call::Stats),
        Cmd::Status(remote) => operate(&settings, remote, Call::Status),
    };
    if let Err(e) = result {
        eprintln!("realtime-server: {e:#}");
        std::process::exit(1);
    }
}

/// Logs to stderr at `RUST_LOG`'s level (default info), as text or as one
/// JSON object per line (`log.format`).
fn init_logger(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            use std::io::Write;
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// Runs one operator command against a running server and prints the
/// answer; a refusal or a server that is not ready exits 1.
fn operate(settings: &Settings, remote: Remote, call: Call) -> anyhow::Result<()> {
    let server = remote
        .server
        .unwrap_or_else(|| cli::default_server(settings));
    let client = AdminClient::new(&server, &settings.auth.admin_token)?;
    let (answer, ok) = actix_web::rt::System::new().block_on(client.run(&call))?;
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", cli::render(&answer));
    }
    if !ok {
        anyhow::bail!("the server at {server} is not ready");
    }
    Ok(())
}

/// The settings loaded (or `main` has already exited 2); what else the
/// server checks before it starts: the JWT key for its environment, the
/// database URL's form.
fn check_config(settings: &Settings) -> anyhow::Result<()> {
    if let Err(e) = Auth::from_settings(&settings.auth, settings.server.environment) {
        eprintln!("realtime-server: {e}");
        std::process::exit(2);
    }
    if let Err(e) = DatabaseUrl::parse(&settings.database.url, &settings.database.data_dir) {
        eprintln!("realtime-server: {e}");
        std::process::exit(2);
    }
    if let Err(e) = TrustedProxies::parse(&settings.server.trusted_proxies) {
        eprintln!("realtime-server: {e}");
        std::process::exit(2);
    }
    let warnings = settings.warnings.len();
    println!(
        "configuration ok ({:?} environment{})",
        settings.server.environment,
        if warnings > 0 {
            format!(", {warnings} warning(s) above")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Applies pending migrations (before the server's runtime starts).
fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(&settings.database.url, &settings.database.data_dir)
        .map_err(anyhow::Error::msg)?;
    let applied = store::migrate(&url).map_err(anyhow::Error::msg)?;
    if applied.is_empty() {
        log::info!("database {} is up to date", url.describe());
    } else {
        log::info!(
            "database {}: applied migrations {}",
            url.describe(),
            applied.join(", ")
        );
    }
    Ok(())
}

fn token(
    settings: &Settings,
    user_id: String,
    rooms: Vec<String>,
    ttl: Duration,
    admin: bool,
    name: Option<String>,
) -> anyhow::Result<()> {
    let auth = Auth::from_settings(&settings.auth, settings.server.environment)?;
    if auth.is_insecure() {
        eprintln!("warning: no JWT key configured; this token is signed with the insecure development secret");
    }
    let now = now_secs();
    let claims = Claims {
        sub: user_id,
        exp: now + ttl.as_secs(),
        iat: Some(now),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        name,
        rooms: (!rooms.is_empty()).then_some(rooms),
        role: admin.then(|| "admin".to_string()),
        iss: (!settings.auth.issuer.is_empty()).then(|| settings.auth.issuer.clone()),
        roles: None,
        aud: (!settings.auth.audience.is_empty())
            .then(|| Audience::One(settings.auth.audience.clone())),
    };
    let token = auth.mint(&claims).map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(())
}
