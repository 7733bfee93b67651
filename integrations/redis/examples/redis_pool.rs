//! A `RedisPool` at work: blocking commands, a pipeline, then 100 tokio
//! tasks sharing 8 connections, and what the pool saw.
//!
//! ```text
//! cargo run -p leasehold-redis --example redis_pool                      # starts its own redis-server
//! cargo run -p leasehold-redis --example redis_pool -- redis://127.0.0.1:6379/0
//! ```
//!
//! Without a URL it starts `redis-server` (from `PATH`) on a free loopback
//! port and stops it at the end; with one, it uses that server (start one
//! with `redis-server --port 6379`), writing keys under `example:`.

use leasehold_testkit::redis_server::RedisProcess;
use redis::{AsyncCommands, RedisResult};
use std::time::Instant;

fn main() -> RedisResult<()> {
    let (_server, url) = match std::env::args().nth(1) {
        Some(url) => (None, url),
        None => {
            let Some(server) = RedisProcess::start() else {
                eprintln!("pass a URL (e.g. redis://127.0.0.1:6379/0) or install redis-server");
                std::process::exit(2);
            };
            let url = server.url("/0");
            (Some(server), url)
        }
    };
    let pool = leasehold_redis::RedisPool::build(&url, |pool| pool.max_per_route(8))?;
    println!("pool for {}", pool.route());

    // Blocking: the lease is what the redis crate's commands take.
    let mut conn = pool.get()?;
    redis::cmd("SET")
        .arg("example:greeting")
        .arg("hello")
        .exec(&mut conn)?;
    let (greeting, hits): (String, i64) = redis::pipe()
        .get("example:greeting")
        .incr("example:hits", 1)
        .query(&mut conn)?;
    println!("blocking: {greeting}, hits = {hits}");
    drop(conn); // back to the pool

    // Async: 100 tasks, 8 connections.
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let total: i64 = runtime.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut sum = 0;
                    for _ in 0..100 {
                        let mut conn = pool.get_async().await?;
                        let n: i64 = conn.incr(format!("example:task:{task}"), 1).await?;
                        sum += n;
                    }
                    RedisResult::Ok(sum)
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("the task ran")?;
        }
        RedisResult::Ok(total)
    })?;
    println!(
        "async: 10 000 INCRs from 100 tasks in {:?} (sum of replies {total})",
        started.elapsed()
    );

    let stats = pool.pool().route_stats(pool.route());
    println!(
        "connections: {} opened, {} idle now, {} leased; health: {:?}",
        stats.created,
        stats.idle,
        stats.leased,
        pool.pool().health()
    );
    let mut conn = pool.get()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("example:*").query(&mut conn)?;
    redis::cmd("DEL").arg(&keys).exec(&mut conn)?;
    Ok(())
}
