"""Distinct English paragraphs (each over 600 characters) for corpus tests."""

TEXTS = {
    "tea": (
        "Tea has been enjoyed for thousands of years across many cultures. Green tea is made from leaves "
        "that are steamed or pan-fired soon after picking, which keeps their fresh and grassy flavour. "
        "Black tea is fully oxidised before drying, giving it a darker colour and a stronger, malty taste. "
        "To brew a good cup, use fresh water and pay attention to the temperature and steeping time. "
        "Most black teas like water just off the boil, while delicate green teas prefer cooler water. "
        "Oolong sits between the two, partly oxidised, and rewards several short infusions from one pot."
    ),
    "bikes": (
        "A bicycle chain wears slowly as its pins and rollers rub against each other, and a stretched chain "
        "grinds down the cassette and chainrings far faster than normal riding would. Measuring it every few "
        "hundred kilometres with a cheap checker tool tells you when to swap it before the damage spreads. "
        "Cleaning matters as much as lubrication: grit mixed with oil forms a paste that acts like sandpaper. "
        "Wipe the chain with a rag after wet rides, apply a drop of lube to each roller, let it soak in, and "
        "then wipe off the excess so the outside stays dry and does not collect dust on the next outing."
    ),
    "sourdough": (
        "Sourdough bread rises thanks to a starter, a living culture of wild yeasts and lactic acid bacteria "
        "kept in a jar of flour and water. Feeding the starter regularly keeps those microbes active; a "
        "healthy one doubles in size within a few hours of a feed and smells pleasantly sour. Bakers mix "
        "the starter with flour, water and salt, then let the dough ferment slowly, folding it now and then "
        "to build strength. The long fermentation develops flavour and makes the crumb open and chewy. "
        "Baking in a covered pot traps steam during the first part of the bake, which gives a crisp crust."
    ),
    "astronomy": (
        "Looking at the night sky with binoculars is an easy first step into astronomy, and it needs no "
        "expensive gear. Find a dark place away from street lights and give your eyes twenty minutes to "
        "adapt. The Moon is the best first target: along the line between day and night, craters cast long "
        "shadows that make their walls stand out. Jupiter shows up to four of its large moons as tiny points "
        "of light that change position from one night to the next. A free star chart app helps you learn "
        "constellations, and a red torch lets you read it without spoiling your night vision again."
    ),
    "gardening": (
        "Composting turns kitchen scraps and garden waste into a dark, crumbly material that feeds the soil. "
        "A good heap balances green material, such as vegetable peelings and grass clippings, with brown "
        "material like dry leaves, straw and shredded cardboard. Too much green makes the pile slimy and "
        "smelly, while too much brown slows everything down. Turning the heap every couple of weeks adds "
        "air, which the microbes need to work quickly. Keep it about as damp as a wrung-out sponge, and in a "
        "few months the bottom of the bin will hold finished compost ready to spread on your beds."
    ),
}
