"""Generate `pages.json`, the offline stand-in for Wikipedia used by section 3.3 (the WikiGame).

    python data/chapter3/wiki/build_graph.py

Each page is a real English Wikipedia title with a short hand-written summary, its main content. Links are
written inline as [[Title]] or [[Title|shown text]], as in wikitext. The script checks that every link points
to a page that exists and that every page can reach every other page along these links, then wraps each body
in the furniture of a real article (infobox, image, footnote, "See also", references, navbox, category: the
shape `action=parse&prop=wikitext` of the MediaWiki API returns) and writes the wikitext to the JSON. The
WikiGame must keep only the body's links; the furniture's links are deliberate shortcuts it must not offer.
"""

from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path

OUT = Path(__file__).with_name("pages.json")
LINK = re.compile(r"\[\[([^\]|]+)(?:\|([^\]]+))?\]\]")

PAGES = {
    # --- physics and astronomy
    "Physics": "Physics is the natural science of matter, [[Energy|energy]] and motion. Classical physics grew from the work of [[Isaac Newton]] and [[Galileo Galilei]]; the twentieth century added the [[Theory of relativity|theory of relativity]] of [[Albert Einstein]] and [[Quantum mechanics|quantum mechanics]]. It underpins [[Chemistry|chemistry]] and [[Astronomy|astronomy]].",
    "Albert Einstein": "Albert Einstein was a [[Germany|German]]-born theoretical physicist who developed the [[Theory of relativity|theory of relativity]] and contributed to [[Quantum mechanics|quantum mechanics]]. He explained the photoelectric effect of [[Light|light]] and was an accomplished violinist who loved [[Music|music]].",
    "Theory of relativity": "The theory of relativity, by [[Albert Einstein]], describes [[Gravity|gravity]] as the curvature of spacetime and shows that the speed of [[Light|light]] is the same for every observer. It is a cornerstone of modern [[Physics|physics]].",
    "Isaac Newton": "Isaac Newton was an English mathematician and physicist from [[England]] who formulated the laws of motion and universal [[Gravity|gravitation]], and invented [[Calculus|calculus]] at the same time as Leibniz. He built the first reflecting [[Telescope|telescope]].",
    "Gravity": "Gravity is the attraction between masses. It keeps the [[Moon]] in orbit around the [[Earth]] and the planets of the [[Solar System]] around the [[Sun]]. [[Isaac Newton]] described it as a force; [[Albert Einstein]] as curved spacetime.",
    "Light": "Light is electromagnetic radiation visible to the human eye. The [[Sun]] is Earth's main source of light, which drives [[Photosynthesis|photosynthesis]]. Its nature is explained by [[Quantum mechanics|quantum mechanics]] and its speed is central to the [[Theory of relativity|theory of relativity]].",
    "Quantum mechanics": "Quantum mechanics describes nature at the scale of atoms. It explains chemical bonding in [[Chemistry|chemistry]], the emission of [[Light|light]], and the behaviour of semiconductors inside every [[Computer|computer]]. [[Albert Einstein]] was among its founders and critics.",
    "Energy": "Energy is the capacity to do work. It comes in forms such as [[Electricity|electricity]], [[Light|light]] and chemical energy stored in food such as [[Bread|bread]]. Almost all energy on [[Earth]] comes from the [[Sun]].",
    "Sun": "The Sun is the star at the centre of the [[Solar System]]. Its [[Light|light]] and heat sustain life on [[Earth]], and its [[Gravity|gravity]] holds the planets in orbit.",
    "Moon": "The Moon is [[Earth]]'s only natural satellite. Its [[Gravity|gravity]] raises the tides of the [[Ocean|ocean]]. [[Galileo Galilei]] saw its craters through a [[Telescope|telescope]].",
    "Earth": "Earth is the third planet from the [[Sun]] and the only known home of life. Most of its surface is covered by [[Ocean|ocean]] [[Water|water]]; its atmosphere is rich in [[Oxygen|oxygen]]. Continents include [[Europe]].",
    "Solar System": "The Solar System is the [[Sun]] and the objects that orbit it, including [[Earth]], [[Mars]] and the [[Moon]]. It is studied by [[Astronomy|astronomy]].",
    "Mars": "Mars is the fourth planet from the [[Sun]], named after the Roman god of war of the [[Roman Empire|Romans]]. It is red because of iron oxide, a compound of [[Oxygen|oxygen]]. It is part of the [[Solar System]].",
    "Astronomy": "Astronomy is the study of celestial objects such as the [[Sun]], [[Mars]] and the [[Moon]]. It was transformed by the [[Telescope|telescope]] of [[Galileo Galilei]] and is one of the oldest sciences, practised in [[Ancient Greece]].",
    "Galileo Galilei": "Galileo Galilei was an [[Italy|Italian]] astronomer and physicist of the [[Renaissance]]. With his [[Telescope|telescope]] he observed the moons of Jupiter and the phases of Venus, supporting the idea that [[Earth]] orbits the [[Sun]].",
    "Telescope": "A telescope gathers [[Light|light]] to observe distant objects. It was developed in the [[Netherlands]] in 1608, improved by [[Galileo Galilei]], and made reflecting by [[Isaac Newton]]. It is the main instrument of [[Astronomy|astronomy]].",
    # --- chemistry and biology
    "Chemistry": "Chemistry studies substances such as [[Water|water]] and [[Oxygen|oxygen]] and how they react. Its theory of bonding comes from [[Quantum mechanics|quantum mechanics]]; biochemistry applies it to [[Biology|biology]].",
    "Water": "Water is a compound of hydrogen and [[Oxygen|oxygen]]. It covers most of [[Earth]] as [[Ocean|ocean]], and [[Plant|plants]] use it in [[Photosynthesis|photosynthesis]]. It is central to [[Chemistry|chemistry]].",
    "Oxygen": "Oxygen is a chemical element essential for animal respiration. It is released by [[Plant|plants]] during [[Photosynthesis|photosynthesis]] and makes up a fifth of [[Earth]]'s atmosphere. It was studied early in modern [[Chemistry|chemistry]] in [[France]].",
    "Photosynthesis": "Photosynthesis is the process by which [[Plant|plants]] use [[Light|light]] energy to turn [[Water|water]] and carbon dioxide into sugar and [[Oxygen|oxygen]]. It takes place inside [[Cell (biology)|cells]] containing chloroplasts.",
    "Plant": "Plants are living things that make their food by [[Photosynthesis|photosynthesis]]. They include the [[Tree|tree]], [[Wheat|wheat]], the [[Tomato|tomato]] and the [[Coffee|coffee]] shrub. Their study is part of [[Biology|biology]].",
    "Tree": "A tree is a tall [[Plant|plant]] with a woody trunk. Trees provide [[Oxygen|oxygen]], timber and fruit such as the [[Banana|banana]] (strictly a giant herb). [[Isaac Newton]] is said to have watched an apple fall from one.",
    "Biology": "Biology is the study of life, from the [[Cell (biology)|cell]] and [[DNA]] to [[Evolution|evolution]]. Modern biology was shaped by [[Charles Darwin]]. It draws on [[Chemistry|chemistry]].",
    "Charles Darwin": "Charles Darwin was a naturalist from [[England]] whose theory of [[Evolution|evolution]] by natural selection transformed [[Biology|biology]]. He sailed on HMS Beagle across the [[Pacific Ocean]].",
    "Evolution": "Evolution is change in the inherited traits of populations over generations, explained by [[Charles Darwin]] through natural selection. Its molecular basis is [[DNA]]. Domestication of the [[Cow|cow]] and [[Wheat|wheat]] is evolution guided by [[Agriculture|agriculture]].",
    "DNA": "DNA is the molecule that carries genetic instructions in every [[Cell (biology)|cell]]. Its double helix was described in 1953 in the [[United Kingdom]]. Variation in DNA is the raw material of [[Evolution|evolution]].",
    "Cell (biology)": "The cell is the basic unit of life. Cells hold [[DNA]]; plant cells perform [[Photosynthesis|photosynthesis]]. They are studied in [[Biology|biology]].",
    # --- mathematics and computing
    "Mathematics": "Mathematics studies number, structure and space. Its branches include [[Geometry|geometry]], founded by [[Euclid]] in [[Ancient Greece]], and [[Calculus|calculus]]. It is the language of [[Physics|physics]] and [[Computer science|computer science]].",
    "Calculus": "Calculus is the mathematics of change, invented by [[Isaac Newton]] and Leibniz. It describes motion and [[Gravity|gravity]] in [[Physics|physics]] and is a core part of [[Mathematics|mathematics]].",
    "Geometry": "Geometry is the branch of [[Mathematics|mathematics]] concerned with shape and space. [[Euclid]] systematised it; [[Albert Einstein]] used curved geometry in the [[Theory of relativity|theory of relativity]].",
    "Euclid": "Euclid was a mathematician of [[Ancient Greece]] whose Elements was the standard textbook of [[Geometry|geometry]] for two thousand years. He worked in Alexandria.",
    "Computer": "A computer is a machine that carries out programs. Modern computers run on [[Electricity|electricity]] and semiconductors explained by [[Quantum mechanics|quantum mechanics]]. Their theory is [[Computer science|computer science]]; [[Alan Turing]] described the universal machine. They are connected by the [[Internet]].",
    "Alan Turing": "Alan Turing was a mathematician from [[England]] who founded [[Computer science|computer science]] and designed early [[Computer|computers]]. He helped break German codes during the Second World War and enjoyed [[Chess|chess]] problems.",
    "Computer science": "Computer science studies computation and information. It was founded by [[Alan Turing]] on [[Mathematics|mathematics]] and includes programming languages such as [[Python (programming language)|Python]].",
    "Python (programming language)": "Python is a programming language created by Guido van Rossum in the [[Netherlands]] and first released in 1991. It is widely used in [[Computer science|computer science]], on the [[Internet]] and for [[Mathematics|mathematics]].",
    "Internet": "The Internet is the global network that links [[Computer|computers]]. The World Wide Web was invented at CERN near [[France]] by a scientist from [[London]]. It carries [[Music|music]], [[Chess|chess]] games and much more.",
    "Electricity": "Electricity is the flow of electric charge. It powers [[Computer|computers]] and lights; [[Thomas Edison]] and [[Nikola Tesla]] competed over how to distribute it. It is a form of [[Energy|energy]].",
    "Thomas Edison": "Thomas Edison was an American inventor who developed a practical electric light bulb and distribution of [[Electricity|electricity]]. He was a rival of [[Nikola Tesla]] and recorded [[Music|music]] on his phonograph.",
    "Nikola Tesla": "Nikola Tesla was an inventor who developed alternating current [[Electricity|electricity]]. He worked in [[Paris]] before moving to the United States, where he rivalled [[Thomas Edison]].",
    # --- places and history
    "Europe": "Europe is a continent of [[Earth]]. Its countries include [[France]], [[Germany]], [[Italy]], the [[Netherlands]] and the [[United Kingdom]]. Its history includes [[Ancient Greece]], the [[Roman Empire]] and the [[Renaissance]].",
    "France": "France is a country in western [[Europe]] whose capital is [[Paris]]. It is famous for [[Cheese|cheese]], [[Bread|bread]] and [[Painting|painting]], and borders [[Germany]] and [[Italy]].",
    "Paris": "Paris is the capital of [[France]]. It is home to the Louvre, which holds the Mona Lisa by [[Leonardo da Vinci]], and to many [[Coffee|coffee]] cafés.",
    "Germany": "Germany is a country in central [[Europe]]. It is the birthplace of [[Albert Einstein]] and [[Ludwig van Beethoven]], and borders [[France]] and the [[Netherlands]]. It is known for [[Bread|bread]].",
    "Italy": "Italy is a country in southern [[Europe]] whose capital is [[Rome]]. It was the heart of the [[Roman Empire]] and the [[Renaissance]], and is the home of [[Pizza|pizza]].",
    "Rome": "Rome is the capital of [[Italy]] and was the capital of the [[Roman Empire]]. It is famous for its ancient ruins, its [[Painting|painting]] and its [[Pizza|pizza]].",
    "Roman Empire": "The Roman Empire ruled much of [[Europe]] from [[Rome]] for centuries. It absorbed the culture of [[Ancient Greece]], and its soldiers were fed on [[Wheat|wheat]] [[Bread|bread]].",
    "Ancient Greece": "Ancient Greece was a civilisation of city states in south-eastern [[Europe]]. It produced [[Philosophy|philosophy]] with [[Aristotle]], [[Geometry|geometry]] with [[Euclid]], and early [[Astronomy|astronomy]]. Its culture was absorbed by the [[Roman Empire]].",
    "Aristotle": "Aristotle was a philosopher of [[Ancient Greece]] who wrote on [[Philosophy|philosophy]], [[Biology|biology]] and [[Physics|physics]]. His physics held until [[Galileo Galilei]] challenged it.",
    "Philosophy": "Philosophy studies knowledge, reality and ethics. It began in [[Ancient Greece]] with thinkers like [[Aristotle]], and gave rise to [[Mathematics|mathematics]] and [[Physics|physics]] as separate disciplines.",
    "Netherlands": "The Netherlands is a low-lying country in [[Europe]] bordering [[Germany]]. It invented the [[Telescope|telescope]], is famous for [[Cheese|cheese]] and [[Cow|cows]], and is where [[Python (programming language)|Python]] was created.",
    "United Kingdom": "The United Kingdom is a country in [[Europe]] made up of [[England]], Scotland, Wales and Northern Ireland. Its capital is [[London]].",
    "England": "England is a country of the [[United Kingdom]] whose capital is [[London]]. It is the birthplace of [[Isaac Newton]], [[Charles Darwin]] and [[Alan Turing]].",
    "London": "London is the capital of [[England]] and the [[United Kingdom]]. It lies on the river Thames and is a world centre of [[Music|music]] and finance.",
    "Ocean": "An ocean is a large body of salt [[Water|water]]. Oceans cover most of [[Earth]]; the largest is the [[Pacific Ocean]]. Their tides are raised by the [[Moon]].",
    "Pacific Ocean": "The Pacific Ocean is the largest [[Ocean|ocean]] on [[Earth]]. [[Charles Darwin]] crossed it on HMS Beagle, visiting the Galápagos Islands. [[Banana|Bananas]] are grown on many Pacific islands.",
    # --- food and agriculture
    "Agriculture": "Agriculture is the cultivation of [[Plant|plants]] and raising of animals such as the [[Cow|cow]]. Staple crops include [[Wheat|wheat]], the [[Banana|banana]] and [[Coffee|coffee]]. It began about 12,000 years ago.",
    "Wheat": "Wheat is a cereal [[Plant|plant]] and one of the most important crops of [[Agriculture|agriculture]]. Its flour is used to make [[Bread|bread]] and the dough of [[Pizza|pizza]].",
    "Bread": "Bread is a staple food made from [[Wheat|wheat]] flour and [[Water|water]]. Bakeries in [[France]] and [[Germany]] are famous for it. It provides [[Energy|energy]] as carbohydrate.",
    "Pizza": "Pizza is a dish from [[Italy]] made of [[Wheat|wheat]] dough topped with [[Tomato|tomato]] and [[Cheese|cheese]]. The Margherita was named in Naples after a queen of Italy.",
    "Tomato": "The tomato is the edible fruit of a [[Plant|plant]] from South America. It is a key ingredient of [[Pizza|pizza]] and of the cuisine of [[Italy]].",
    "Cheese": "Cheese is a food made from [[Milk|milk]]. [[France]], [[Italy]] and the [[Netherlands]] are famous for it; mozzarella tops [[Pizza|pizza]].",
    "Milk": "Milk is a nutritious liquid produced by mammals such as the [[Cow|cow]]. It is made into [[Cheese|cheese]] and added to [[Coffee|coffee]].",
    "Cow": "The cow is a domesticated animal raised in [[Agriculture|agriculture]] for [[Milk|milk]] and meat. Its domestication is an example of [[Evolution|evolution]] under human selection.",
    "Coffee": "Coffee is a drink brewed from the roasted seeds of the coffee [[Plant|plant]], grown in tropical [[Agriculture|agriculture]]. The café culture of [[Paris]] and [[Vienna]] made it famous; many drink it with [[Milk|milk]].",
    "Banana": "The banana is an elongated fruit of a large herbaceous [[Plant|plant]]. It is a major crop of tropical [[Agriculture|agriculture]], including islands of the [[Pacific Ocean]].",
    # --- arts and games
    "Music": "Music is the art of arranging sound in time. Classical composers include [[Ludwig van Beethoven]]; instruments include the [[Piano|piano]]. [[Vienna]] and [[London]] are centres of music.",
    "Ludwig van Beethoven": "Ludwig van Beethoven was a composer and pianist from [[Germany]] who spent most of his life in [[Vienna]]. He wrote nine symphonies and many works for [[Piano|piano]], and kept composing [[Music|music]] after going deaf.",
    "Piano": "The piano is a keyboard instrument invented in [[Italy]] around 1700. Composers such as [[Ludwig van Beethoven]] wrote much of their [[Music|music]] for it.",
    "Vienna": "Vienna is the capital of Austria in central [[Europe]]. It was home to [[Ludwig van Beethoven]] and is famous for its [[Music|music]] and its [[Coffee|coffee]] houses.",
    "Painting": "Painting is the art of applying pigment to a surface. Great painters include [[Leonardo da Vinci]] of the [[Renaissance]]; [[Paris]] and [[Rome]] hold famous collections.",
    "Leonardo da Vinci": "Leonardo da Vinci was a polymath of the [[Italy|Italian]] [[Renaissance]], famous for [[Painting|painting]] the Mona Lisa, now in [[Paris]], and for notebooks on anatomy, [[Physics|physics]] and flying machines.",
    "Renaissance": "The Renaissance was a period of European culture from the 14th to 17th centuries, beginning in [[Italy]]. It revived the learning of [[Ancient Greece]] and produced [[Leonardo da Vinci]] and [[Galileo Galilei]].",
    "Chess": "Chess is a board game for two players. It reached [[Europe]] in the Middle Ages; today it is played by [[Computer|computers]] and by millions over the [[Internet]]. [[Alan Turing]] wrote one of the first chess programs.",
}


# Categories of the groups above, in order, with how many pages each holds.
GROUPS = [("Physics and astronomy", 16), ("Chemistry and biology", 11), ("Mathematics and computing", 12),
          ("Places and history", 16), ("Food and agriculture", 10), ("Arts and games", 8)]


def parse(markup: str) -> tuple[str, list[str]]:
    links: list[str] = []
    for m in LINK.finditer(markup):
        if m[1] not in links:
            links.append(m[1])
    text = LINK.sub(lambda m: m[2] or m[1], markup)
    return text, links


def reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in graph[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def wikitext(i: int, title: str, body: str, titles: list[str], group: str, members: list[str], links: list[str]) -> str:
    """The hand-written body inside the furniture of a real article: an infobox, an image with a linked caption,
    a footnote, a "See also" list, references, a navigation box and a category. Only the body is main content;
    the other links point to pages the body does not link to (shortcuts the game must not offer)."""
    others = [t for t in titles if t != title and t not in links]
    see_also = [others[(7 * i + 3) % len(others)], others[(11 * i + 5) % len(others)]]
    related, beside = others[(5 * i + 1) % len(others)], others[(3 * i + 2) % len(others)]
    navbox = " | ".join(f"[[{t}]]" for t in members if t != title)
    first, _, rest = body.partition(". ")
    bold = "'''"
    cite = f"<ref>{{{{cite web |title={title} |url=https://en.wikipedia.org/wiki/{title.replace(' ', '_')}}}}}</ref>"
    file = title.replace(" ", "_")
    return (
        f"{{{{Short description|Article about {title.lower()}}}}}\n"
        f"{{{{Infobox topic\n| name = {title}\n| related = [[{related}]]\n}}}}\n"
        f"[[File:{file}.jpg|thumb|An image of {title.lower()}, beside [[{beside}]]]]\n"
        f"<!-- hand-written summary, page {i + 1} of {len(titles)} -->\n"
        f"{bold}{first}{bold}. {cite}{rest}\n\n"
        f"== See also ==\n* [[{see_also[0]}]]\n* [[{see_also[1]}]]\n\n"
        "== References ==\n{{Reflist}}\n* [[Special:BookSources/0000000000|Book sources]]\n"
        "* [[Help:Referencing for beginners|How to cite]]\n\n"
        f"{{{{Navbox\n| name = {group}\n| list1 = {navbox}\n}}}}\n"
        f"[[Category:{group}]]\n"
    )


def build() -> list[dict]:
    titles = list(PAGES)
    assert sum(k for _, k in GROUPS) == len(titles), "GROUPS must cover every page, in order"
    groups, i0 = {}, 0
    for name, k in GROUPS:
        groups.update({t: (name, titles[i0:i0 + k]) for t in titles[i0:i0 + k]})
        i0 += k
    pages, graph = [], {}
    for i, (title, markup) in enumerate(PAGES.items()):
        _, links = parse(markup)
        missing = [l for l in links if l not in PAGES]
        assert not missing, f"{title!r} links to pages that do not exist: {missing}"
        assert title not in links, f"{title!r} links to itself"
        graph[title] = links
        pages.append({"title": title, "wikitext": wikitext(i, title, markup, titles, *groups[title], links)})
    for title in graph:
        unreached = set(graph) - reachable(graph, title)
        assert not unreached, f"from {title!r} these pages cannot be reached: {sorted(unreached)}"
    return pages


def main_links() -> dict[str, list[str]]:
    """The links of each page's hand-written body: what the WikiGame must offer, nothing more."""
    return {title: parse(markup)[1] for title, markup in PAGES.items()}


if __name__ == "__main__":
    pages = build()
    OUT.write_text(json.dumps({"source": "hand-written summaries of English Wikipedia articles, as wikitext",
                               "pages": pages}, indent=1, ensure_ascii=False) + "\n")
    n_links = sum(len(v) for v in main_links().values())
    print(f"wrote {OUT.name}: {len(pages)} pages, {n_links} main-content links, {OUT.stat().st_size / 1024:.1f} KiB")
