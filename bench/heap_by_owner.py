#!/usr/bin/env python3
"""Heap at the peak of a valgrind massif profile, per connection, grouped by
the first frame (from the allocation outwards) that belongs to our code or
to a named library (actix, tokio, sqlite): who owns each byte. This is how
the idle-memory breakdown in docs/benchmarks.md was made:

    valgrind --tool=massif --depth=40 --threshold=0.2 SERVER   # a release build
        # with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only, DATABASE_URL=sqlite://…
    realtime-bench idle --url ws://… --pid PID --secret … --conns 2000 --duration 10
    kill -TERM PID; python3 bench/heap_by_owner.py massif.out.PID 2000
"""
import re,sys,collections
lines=open(sys.argv[1]).read().split('\n')
CONNS=int(sys.argv[2])
# find peak snapshot
i=0; snaps=[]
while i<len(lines):
    if lines[i].startswith('snapshot='):
        n=int(lines[i].split('=')[1]); j=i+1; info={}
        while j<len(lines) and not lines[j].startswith('snapshot='):
            if lines[j].startswith('heap_tree='): info['tree']=lines[j].split('=')[1]; info['start']=j+1
            if lines[j].startswith('mem_heap_B='): info['heap']=int(lines[j].split('=')[1])
            j+=1
        info['end']=j; snaps.append((n,info)); i=j
    else: i+=1
peak=[s for s in snaps if s[1].get('tree')=='peak'][0][1]
tree=lines[peak['start']:peak['end']]
# parse tree with indentation
interesting=re.compile(r'(realtime_server::[\w:<>]+|actix_http::[\w:]+|actix_web::[\w:]+|actix::[\w:]+|actix_web_actors::[\w:]+|tokio::[\w:]+|actix_server::[\w:]+|actix_rt::[\w:]+|sqlite3\w*|bytes::[\w:]+|tokio_util::[\w:]+|h1::[\w:]+)')
skip=re.compile(r'alloc::|core::|std::|hashbrown|smallvec|__rust|raw_vec|bytes::bytes_mut::BytesMut::(reserve|with_capacity)|<alloc|<core')
agg=collections.Counter()
stack=[]
for l in tree:
    if not l.strip(): continue
    m=re.match(r'^( *)n(\d+): (\d+) (.*)$',l)
    if not m: continue
    depth=len(m.group(1)); nchild=int(m.group(2)); b=int(m.group(3)); desc=m.group(4)
    stack=stack[:depth]; stack.append(desc)
    if nchild==0:
        # leaf: attribute to first interesting frame from leaf upward
        label='?'
        for d in stack[1:]:
            mm=interesting.search(d)
            if mm and not d.split(': ',1)[-1].startswith(('alloc','core','<alloc','<core')):
                label=mm.group(1)[:110]; break
        agg[label]+=b
tot=peak['heap']
print('peak heap', tot)
for k,v in agg.most_common(30): print(f'{v/CONNS/1024:7.2f} KiB/conn {v:>10}  {k}')
