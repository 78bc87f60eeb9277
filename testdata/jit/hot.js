function fib(n){ return n < 2 ? n : fib(n-1) + fib(n-2); }
function work(){ let s=0; for (let i=0;i<30;i++) s+=fib(22); return s; }
let t=Date.now(); let acc=0; while (Date.now()-t < 800) acc+=work(); console.log(acc>0);
